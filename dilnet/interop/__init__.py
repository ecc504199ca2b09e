"""Bridges from other libraries' saved models (`dilnet.interop.lasagne`)."""
