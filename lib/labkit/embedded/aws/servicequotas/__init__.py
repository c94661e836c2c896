"""Embedded Service Quotas for EC2 (vCPU quotas per instance family); other services go to moto."""
