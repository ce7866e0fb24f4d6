"""BreastLVI: breast MRI sequences + lesion VOI -> CNNs -> probability of lymphovascular invasion."""
