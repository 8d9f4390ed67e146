# Operator image (finished in the packaging issue): the package and its runtime dependencies only.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip install --no-cache-dir . && useradd --uid 65532 --no-create-home opex
USER 65532
EXPOSE 8080 8081
ENTRYPOINT ["python", "-m", "opex_operator"]
