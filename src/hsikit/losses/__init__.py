"""hsikit.losses: training objectives, one module per capability.

Import from the module that owns a loss (the names of different capabilities overlap,
so nothing is re-exported here):

* :mod:`hsikit.losses.reconstruction` - MRAE and spectral-angle losses of the MST++ recipe;
* :mod:`hsikit.losses.gan` - the CSWIN v2 Sinkhorn-GAN objective, R1 penalty, generator loss;
* :mod:`hsikit.losses.segmentation` - class-weighted cross-entropy and focal loss of SSMGNet;
* :mod:`hsikit.losses.attention` - SSMGNet's spectral-similarity attention supervision;
* :mod:`hsikit.losses.clustering` - the self-supervised losses of deep global clustering;
* :mod:`hsikit.losses.spectral` - deephyp's SSE, SA, SID and CSA reconstruction losses.
"""
