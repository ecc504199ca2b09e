"""Lasagne's ``lasagne.theano_extensions``: 1-D convolutions (`conv`) and padding (`padding`).

Lasagne wrote these on top of Theano's 2-D convolution; here they are thin fronts for dilnet's
own N-d correlation Op (`dilnet.ops.dilated_conv`) and a constant pad.
"""

from . import conv as conv
from . import padding as padding
