"""Guard rails of automation (pure, but for ``breaker_store`` and ``verify``, which read through ports):
plan gates an automatic apply must pass (``gates``), the circuit breaker on automated changes per
namespace (``breaker``, kept by ``breaker_store``), and the bake window after a reversible step
(``bake``, observed by ``verify``)."""
