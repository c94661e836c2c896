"""Embedded EKS additions: Auto Mode fields, add-ons, access entries, Pod Identity, eks-auth."""
