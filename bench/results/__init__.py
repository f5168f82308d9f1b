"""What runs leave behind and the tools that read it: the Result record, the bundle (one
writer, one verifier), compare, report, archives, and what an environment was."""
