"""`python -m chroma_operator` is the same as the `chroma-operator` command."""

from chroma_operator.cli import main

if __name__ == "__main__":
    main()
