"""Framework-free foundations: the architecture records and their arithmetic, run profiles, seeding, training
histories, safe file writes, the machine's facts and the arithmetic of splitting batches over processes (cluster).
Imports no framework."""
