"""Small helpers the local tools (devhost, aciemu, the local stack) share; never part of the deployed app."""
