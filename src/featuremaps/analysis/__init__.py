"""What the maps mean, measured: where a unit's value comes from (:mod:`.lineage`, an exact split into the
maps of the layers below) and what each layer and channel knows (:mod:`.hierarchy`, linear probes and part /
object detectors). Pictures of both are in :mod:`featuremaps.render`."""
