"""RGB → hyperspectral reconstruction models (``task="reconstruction"``).

Importing this package registers its architectures:

* ``"mst_plus_plus"``: :class:`MSTPlusPlus` (Cai et al., CVPRW 2022), the NTIRE 2022 winner;
* ``"hscnn_r"``: :class:`HSCNNR`, a residual CNN baseline in the HSCNN+ family.
"""

from hsikit.models.reconstruction.hscnn import HSCNNR
from hsikit.models.reconstruction.mst_plus_plus import MSTPlusPlus, load_reference_state_dict

__all__ = ["HSCNNR", "MSTPlusPlus", "load_reference_state_dict"]
