"""Everything goods-factory keeps on disk: the database and the data files it reads."""
