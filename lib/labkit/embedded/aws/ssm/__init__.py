"""Embedded SSM public parameters for EKS-optimized and Bottlerocket AMIs (moto has none)."""
