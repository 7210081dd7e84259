"""RGB → hyperspectral reconstruction models (``task="reconstruction"``).

Importing this package registers its architectures:

* ``"mst_plus_plus"``: :class:`MSTPlusPlus` (Cai et al., CVPRW 2022), the NTIRE 2022 winner;
* ``"hscnn_r"``: :class:`HSCNNR`, a residual CNN baseline in the HSCNN+ family;
* ``"cswin_generator"``: :class:`NoiseRobustCSWinGenerator` (CSWIN v2), and its GAN critic
  ``"cswin_discriminator"``: :class:`SNTransformerDiscriminator` (``task="gan_discriminator"``);
* ``"hsifusion_{tiny,small,base,large,xlarge}"``: :class:`HSIFusionNet` (HSIFusionNet v2.5.3) presets;
* ``"sharp_{tiny,small,base,large}"``: :class:`SHARP` (SHARP v3.2.2) presets.
"""

from hsikit.models.reconstruction.cswin import NoiseRobustCSWinGenerator
from hsikit.models.reconstruction.cswin_discriminator import SNTransformerDiscriminator
from hsikit.models.reconstruction.hscnn import HSCNNR
from hsikit.models.reconstruction.hsifusion import HSIFusionNet
from hsikit.models.reconstruction.mst_plus_plus import MSTPlusPlus, load_reference_state_dict
from hsikit.models.reconstruction.sharp import SHARP

__all__ = [
    "HSCNNR",
    "HSIFusionNet",
    "SHARP",
    "MSTPlusPlus",
    "NoiseRobustCSWinGenerator",
    "SNTransformerDiscriminator",
    "load_reference_state_dict",
]
