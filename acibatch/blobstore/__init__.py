"""Blob storage for input files, output files and whole logs (issue 24): names, SAS, reads and the agent manifest.

Kept import-light on purpose: `acibatch.blobstore.layout` is pure, the other modules load azure-storage-blob.
"""
