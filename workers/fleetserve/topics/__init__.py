"""Topics as data: the declaration, its loader, a pure plan and the admin calls that apply it."""
