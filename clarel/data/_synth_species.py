"""SynthBirds species: part attributes, families of near-identical species, the zero-shot split.

A species is a dict ``attribute -> value`` over `ATTRIBUTES`. Species come in families: a random
base species plus siblings that differ from it in 1-3 attributes, so many species have a close
neighbour (fine-grained, like CUB). The unseen species are spread over the families, and every
attribute value is guaranteed to occur among the seen species, so an unseen species is a new
*combination* of known values rather than a new value.
"""

from __future__ import annotations

import random

COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "brown", "black", "white", "grey")

# attribute -> its values; the order fixes the columns of the class x attribute matrix.
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "crown_color": COLOURS,
    "wing_color": COLOURS,
    "breast_color": COLOURS,
    "belly_color": COLOURS,
    "tail_color": COLOURS,
    "wing_pattern": ("solid", "barred", "spotted"),
    "beak_shape": ("conical", "pointed", "hooked"),
    "beak_length": ("short", "long"),
    "beak_color": ("black", "yellow", "orange", "grey"),
    "tail_shape": ("forked", "rounded", "pointed", "square"),
    "eye_ring": ("yes", "no"),
    "leg_color": ("black", "pink", "yellow"),
    "size": ("small", "medium", "large"),
}

# Which attributes a hidden part takes out of view.
PART_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "head": ("crown_color", "eye_ring", "beak_shape", "beak_length", "beak_color"),
    "wing": ("wing_color", "wing_pattern"),
    "tail": ("tail_color", "tail_shape"),
    "lower": ("belly_color", "leg_color"),
    "legs": ("leg_color",),
}

# Juvenile / female plumage: bright crown and breast colours look duller.
DULL = {
    "red": "brown", "orange": "brown", "yellow": "white", "green": "grey", "blue": "grey",
    "purple": "grey", "brown": "brown", "black": "grey", "white": "white", "grey": "grey",
}

_PREFIXES = (
    "Marsh", "Highland", "Coastal", "Forest", "Desert", "River", "Meadow", "Canyon", "Prairie",
    "Alpine", "Lesser", "Greater", "Northern", "Southern", "Eastern", "Western", "Island", "Cliff",
    "Reed", "Thicket", "Mangrove", "Tundra", "Savanna", "Harbor",
)
_GENERA = {
    "conical": ("Finch", "Grosbeak", "Bunting", "Sparrow"),
    "pointed": ("Warbler", "Wren", "Vireo", "Flycatcher"),
    "hooked": ("Shrike", "Kite", "Falconet", "Butcherbird"),
}


def attribute_columns() -> list[str]:
    """CUB-style attribute column names, e.g. ``has_crown_color::red``."""
    return [f"has_{a}::{v}" for a, values in ATTRIBUTES.items() for v in values]


def _random_species(rng: random.Random) -> dict[str, str]:
    sp = {a: rng.choice(values) for a, values in ATTRIBUTES.items()}
    # Real birds often share a colour between breast and belly; keep that common.
    if rng.random() < 0.4:
        sp["belly_color"] = sp["breast_color"]
    return sp


def _mutate(rng: random.Random, base: dict[str, str], n_changes: int) -> dict[str, str]:
    sp = dict(base)
    for attr in rng.sample(list(ATTRIBUTES), n_changes):
        sp[attr] = rng.choice([v for v in ATTRIBUTES[attr] if v != base[attr]])
    return sp


def _key(sp: dict[str, str]) -> tuple[str, ...]:
    return tuple(sp[a] for a in ATTRIBUTES)


def make_species(rng: random.Random, n_classes: int, n_unseen: int, n_val: int) -> dict:
    """Species definitions and the class split.

    Returns:
        ``{"species": [dict], "family": [int], "unseen": set[int], "val": set[int]}``; indices
        refer to positions in ``species``.
    """
    species: list[dict[str, str]] = []
    family: list[int] = []
    seen_keys: set[tuple[str, ...]] = set()
    fam = 0
    while len(species) < n_classes:
        members = min(rng.randint(3, 5), n_classes - len(species))
        base = _random_species(rng)
        while _key(base) in seen_keys:
            base = _random_species(rng)
        group = [base]
        while len(group) < members:
            parent = rng.choice(group)
            child = _mutate(rng, parent, rng.randint(1, 3))
            if _key(child) not in seen_keys and all(_key(child) != _key(g) for g in group):
                group.append(child)
        for sp in group:
            seen_keys.add(_key(sp))
            species.append(sp)
            family.append(fam)
        fam += 1

    # Unseen species: round-robin over families, never a family's only seen member, so each
    # unseen species has a seen neighbour that differs in a few attributes.
    by_family: dict[int, list[int]] = {}
    for i, f in enumerate(family):
        by_family.setdefault(f, []).append(i)
    order = list(by_family)
    rng.shuffle(order)
    unseen: set[int] = set()
    while len(unseen) < n_unseen:
        progressed = False
        for f in order:
            free = [i for i in by_family[f] if i not in unseen]
            if len(free) > 1 and len(unseen) < n_unseen:
                unseen.add(rng.choice(free[1:]))
                progressed = True
        if not progressed:  # families exhausted: take any remaining species
            rest = [i for i in range(n_classes) if i not in unseen]
            unseen.update(rng.sample(rest, n_unseen - len(unseen)))
    _cover_values(rng, species, [i for i in range(n_classes) if i not in unseen])
    seen = [i for i in range(n_classes) if i not in unseen]
    val = set(rng.sample(seen, n_val))
    return {"species": species, "family": family, "unseen": unseen, "val": val}


def _cover_values(rng: random.Random, species: list[dict[str, str]], seen: list[int]) -> None:
    """Make every attribute value occur in some seen species (edits seen species in place)."""
    keys = {_key(sp) for sp in species}
    for attr, values in ATTRIBUTES.items():
        for value in values:
            if any(species[i][attr] == value for i in seen):
                continue
            counts = {v: sum(species[i][attr] == v for i in seen) for v in values}
            # Take a seen species whose value is common, so no other value is lost.
            donors = [i for i in seen if counts[species[i][attr]] > 1]
            rng.shuffle(donors)
            for i in donors:
                candidate = dict(species[i], **{attr: value})
                if _key(candidate) not in keys:
                    keys.discard(_key(species[i]))
                    keys.add(_key(candidate))
                    species[i] = candidate
                    break


def species_names(rng: random.Random, species: list[dict[str, str]]) -> list[str]:
    """Unique readable names like ``Marsh Finch`` (the genus follows the beak shape)."""
    names: list[str] = []
    used: set[str] = set()
    for sp in species:
        genera = _GENERA[sp["beak_shape"]]
        for _ in range(200):
            name = f"{rng.choice(_PREFIXES)} {rng.choice(genera)}"
            if name not in used:
                break
        else:
            name = f"{rng.choice(_PREFIXES)} {rng.choice(genera)} {len(names) + 1}"
        used.add(name)
        names.append(name)
    return names
