"""HTTP only: each router declares its paths, parameters, role dependencies and responses,
and calls one service function."""
