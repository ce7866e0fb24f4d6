"""MammoRadiomics: mammograms -> lesion segmentation -> 2D pyradiomics features -> FAE-style classifier."""
