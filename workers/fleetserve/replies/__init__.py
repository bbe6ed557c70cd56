"""Reading replies back: filters for relabeling jobs and a tail that resumes where it stopped."""
