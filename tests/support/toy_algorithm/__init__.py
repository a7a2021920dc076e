"""A fifth algorithm that lives outside the package, to prove that adding one takes a
module and a table entry: `spec.py` is the entry (standard library only, as launch/
reads it), `centroid.py` the implementation."""
