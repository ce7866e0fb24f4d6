"""BoneScanBSTBI: whole-body bone scans -> metastasis/bladder classification, segmentation, BSTBI."""
