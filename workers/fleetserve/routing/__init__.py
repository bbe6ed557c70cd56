"""Routing: which snapshot answers each bot on each stage, kept live from the deployments topic."""
