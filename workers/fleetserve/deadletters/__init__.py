"""Dead letters: the failure taxonomy and the pure builder of dead_letter v1 records."""
