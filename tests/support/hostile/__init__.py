"""A hypothesis corpus of hostile query records, each with the outcome the contract demands."""
