"""``python -m opex_operator [--verbose]`` runs the operator (the same as ``opex operator``)."""
import sys

from .cli import main

if __name__ == "__main__":
    main(["operator", *sys.argv[1:]])
