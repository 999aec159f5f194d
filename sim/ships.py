"""Ship types the simulator's shipyards sell and new agents start with (stats from real data)."""

from __future__ import annotations

import copy
from dataclasses import dataclass


def _component(symbol, name, description, requirements, **stats) -> dict:
    return {"symbol": symbol, "name": name, "description": description,
            "requirements": requirements, **stats}


def _part(symbol, name, description, requirements, **stats) -> dict:
    """A frame, reactor or engine: components with condition, integrity and quality."""
    return _component(symbol, name, description, requirements, condition=1.0, integrity=1.0,
                      quality=4, **stats)


_CARGO_HOLD = _component("MODULE_CARGO_HOLD_II", "Expanded Cargo Hold",
                         "An expanded cargo hold.", {"crew": 2, "power": 2, "slots": 2},
                         capacity=40)
_QUARTERS = _component("MODULE_CREW_QUARTERS_I", "Crew Quarters", "Living space for the crew.",
                       {"crew": 2, "power": 1, "slots": 1}, capacity=40)
_TURRET = _component("MOUNT_TURRET_I", "Rotary Cannon", "A rotary cannon turret.",
                     {"crew": 1, "power": 1})
_SENSOR = _component("MOUNT_SENSOR_ARRAY_II", "Sensor Array II", "An advanced sensor array.",
                     {"crew": 2, "power": 2}, strength=4)
_ION_I = _part("ENGINE_ION_DRIVE_I", "Ion Drive I", "An ion propulsion system.",
               {"crew": 3, "power": 3}, speed=15)
_CHEMICAL = _part("REACTOR_CHEMICAL_I", "Chemical Reactor I", "A chemical power reactor.",
                  {"crew": 3}, powerOutput=15)


@dataclass(frozen=True)
class ShipType:
    type: str
    name: str
    description: str
    role: str
    price: int
    frame: dict
    reactor: dict
    engine: dict
    modules: tuple[dict, ...]
    mounts: tuple[dict, ...]
    crew_required: int
    crew_capacity: int

    @property
    def cargo_capacity(self) -> int:
        return sum(m.get("capacity", 0) for m in self.modules if "CARGO" in m["symbol"])

    @property
    def fuel_capacity(self) -> int:
        return self.frame["fuelCapacity"]

    @property
    def speed(self) -> int:
        return self.engine["speed"]

    def components(self) -> dict:
        """Fresh copies of the parts, so one ship's wear never shows on another."""
        return copy.deepcopy({"frame": self.frame, "reactor": self.reactor,
                              "engine": self.engine, "modules": list(self.modules),
                              "mounts": list(self.mounts)})

    def listing(self, supply: str = "HIGH", activity: str = "GROWING") -> dict:
        """A `ShipyardShip` entry."""
        return {"type": self.type, "name": self.name, "description": self.description,
                "supply": supply, "activity": activity, "purchasePrice": self.price,
                **self.components(),
                "crew": {"required": self.crew_required, "capacity": self.crew_capacity}}


SHIP_TYPES = {
    t.type: t
    for t in (
        ShipType(
            "SHIP_PROBE", "Probe Satellite", "A small unmanned craft that gathers data.",
            "SATELLITE", 21_627,
            _part("FRAME_PROBE", "Probe", "A small unmanned spacecraft.",
                  {"crew": 0, "power": 1}, moduleSlots=0, mountingPoints=0, fuelCapacity=0),
            _part("REACTOR_SOLAR_I", "Solar Reactor I", "A basic solar power reactor.",
                  {"crew": 0}, powerOutput=3),
            _part("ENGINE_IMPULSE_DRIVE_I", "Impulse Drive I", "A basic low-energy drive.",
                  {"crew": 0, "power": 1}, speed=9),
            (), (), 0, 0,
        ),
        ShipType(
            "SHIP_LIGHT_SHUTTLE", "Light Shuttle", "A small craft for short cargo runs.",
            "TRANSPORT", 88_853,
            _part("FRAME_SHUTTLE", "Shuttle", "A small, agile spacecraft.",
                  {"crew": 10, "power": 1}, moduleSlots=3, mountingPoints=1, fuelCapacity=300),
            _CHEMICAL, _ION_I, (_CARGO_HOLD, _QUARTERS), (_TURRET,), 21, 40,
        ),
        ShipType(
            "SHIP_LIGHT_HAULER", "Light Hauler", "A versatile cargo ship.", "HAULER", 272_775,
            _part("FRAME_LIGHT_FREIGHTER", "Light Freighter", "A small cargo spacecraft.",
                  {"crew": 40, "power": 5}, moduleSlots=6, mountingPoints=1, fuelCapacity=600),
            _CHEMICAL, _ION_I, (_CARGO_HOLD, _CARGO_HOLD, _QUARTERS, _QUARTERS), (_TURRET,),
            55, 80,
        ),
        ShipType(
            "SHIP_COMMAND_FRIGATE", "Command Frigate", "A multi-purpose command ship.",
            "COMMAND", 0,
            _part("FRAME_FRIGATE", "Frigate", "A medium-sized, multi-purpose spacecraft.",
                  {"crew": 25, "power": 8}, moduleSlots=8, mountingPoints=5, fuelCapacity=400),
            _part("REACTOR_FISSION_I", "Fission Reactor I", "A basic fission reactor.",
                  {"crew": 8}, powerOutput=31),
            _part("ENGINE_ION_DRIVE_II", "Ion Drive II", "An improved ion drive.",
                  {"crew": 8, "power": 6}, speed=36),
            (_CARGO_HOLD, _QUARTERS, _QUARTERS), (_SENSOR,), 57, 80,
        ),
    )
}
