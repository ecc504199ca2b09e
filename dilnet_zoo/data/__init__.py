"""Small data sets shipped with dilnet_zoo, each with its notice (``LICENSE-*.txt``) beside it.

* :mod:`dilnet_zoo.data.mni152`: the MNI ICBM152 2009a symmetric template at 2 mm with
  background / CSF / grey matter / white matter labels (``load_mni152``, ``hemispheres``).
"""
