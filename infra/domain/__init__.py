"""The domain operations of ``infra``, by sub-domain; ``infra.services`` names them all."""
