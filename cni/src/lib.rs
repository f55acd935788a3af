//! skiff-cni: the CNI 1.1 wire format ([`spec`]) shared with the agent's CNI runtime, and the
//! skiff-cni plugin itself ([`plugin`]: bridge + veth + built-in IPAM + nftables masquerade).

pub mod plugin;
pub mod spec;
