"""Reports generated from run records: tables, figures, markdown."""
