"""Stages and deployments: which snapshot each bot serves on dev, beta and real."""
