//! Whose fault an error is: the input's (exit status 2) or the world's (exit status 1).
//! Every library error type says so with `fault()`, and so gives its `exit_code()`.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Invalid input or usage: the inventory, a flag, a file the user gave.
    Input,
    /// The work failed: a host, the network, this machine.
    Runtime,
}

impl Fault {
    pub const fn exit_code(self) -> u8 {
        match self {
            Fault::Input => 2,
            Fault::Runtime => 1,
        }
    }
}
