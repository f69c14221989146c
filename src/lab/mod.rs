//! Local lab hosts: throwaway systemd-nspawn machines with real systemd and sshd.
