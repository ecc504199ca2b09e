"""The dilated N-d convolution Op family (see `dilnet.ops.corr`)."""

from .corr import (
    DilatedCorr as DilatedCorr,
)
from .corr import (
    DilatedCorrGradInputs as DilatedCorrGradInputs,
)
from .corr import (
    DilatedCorrGradWeights as DilatedCorrGradWeights,
)
from .corr import (
    dilated_conv as dilated_conv,
)
