"""The fleet at work: pykka actors that execute the factory's task graph against the API."""
