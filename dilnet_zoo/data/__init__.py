"""Small data sets shipped with dilnet_zoo, each with its notice (``LICENSE-*.txt``) beside it.

* :mod:`dilnet_zoo.data.mni152`: the MNI ICBM152 2009a symmetric template at 2 mm and 1 mm with
  background / CSF / grey matter / white matter labels (``load_mni152``): training data.
* :mod:`dilnet_zoo.data.colin27`: Colin27, a single subject's brain, with reference labels by the
  same procedure at 1 mm and on the MNI152 2 mm grid, and its native NIfTI (``load_colin27``,
  ``t1_nifti_path``): held-out evaluation data.
"""
