"""The DITS paper's eight datasets, read from a local directory; ``dispatch`` imports every loader.

Each loader module says which files it reads and registers itself in ``base``;
``dispatch.load`` reads a dataset by name.
"""
