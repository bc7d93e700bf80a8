"""jobkit: the job pattern as a library, shared by every function through the common layer."""
