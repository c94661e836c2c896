"""Controllers of the embedded cluster: reconcile loops over the store, run by :mod:`.manager`."""
