"""One module per upstream: a thin fetch half over a pure, table-tested parse/map half."""
