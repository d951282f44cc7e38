"""GitHub discovery (issue 18): the installation's ``catalog-info.yaml`` files imported."""
