"""``python -m opex_operator`` runs the operator (the same as ``opex operator``)."""
from .cli import main

if __name__ == "__main__":
    main(["operator"])
