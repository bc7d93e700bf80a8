"""Operations: the health probe, credential rotation, the job-health page."""
