"""Release artifacts: the adapter in the forms the serving backends load, its provenance and signature."""
