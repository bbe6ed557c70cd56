"""The message contracts of fleetserve: JSON Schemas, their codec and typed shapes."""
