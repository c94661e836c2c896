"""Compute: GPU node pools (Karpenter or EKS Auto Mode), the NVIDIA device plugin, Karpenter install."""
