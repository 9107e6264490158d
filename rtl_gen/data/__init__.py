"""Data sets and their loaders: the 8x8 digits (:mod:`.digits`), IDX files (:mod:`.idx`)."""
