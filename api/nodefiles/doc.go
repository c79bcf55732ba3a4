// Package nodefiles is the contract between sluice's three programs on a
// node (the CNI plugin, the device plugin and the node agent): the files
// they share, where they live, their formats, and how each is written and
// locked. Each program depends on this package, never on another
// program's.
//
//   - The attachment registry (Attachments): one JSON record per VF the CNI
//     attached to a pod, named by its PCI address. The CNI writes it on ADD
//     before the VF leaves the host namespace and removes it on DEL; the
//     device plugin reads it to tell a VF whose netdev moved into a pod
//     from one whose netdev vanished, and to prefer VFs no pod still holds;
//     the agent reads it to know which pods use which VF. A record that
//     cannot be parsed hides no other (List returns it apart) and still
//     holds its VF, since its name says the VF was attached: the CNI's DEL
//     of that attachment, an ADD finding the VF back in the host namespace,
//     or the agent seeing the same, moves it to the registry's quarantine
//     directory (kept for a person to read). Until then the agent reports
//     it (an UnreadableAttachmentRecord event naming the file, the
//     sluice_agent_unreadable_attachment_records gauge) and holds any change
//     to its VF, without a drain slot, since no eviction can free it.
//   - The readiness gate (GateState): the agent lists the PFs whose VFs are
//     configured as the node's state asks, and the device plugin advertises
//     only VFs of those PFs, so a VF is never offered to the kubelet before
//     it is configured.
//   - The VF lock (LockVF): one lock file per VF, taken by every CNI command
//     on the VF and by the agent before it changes a VF.
//   - The CNI's outcome counters (Stats), exported by the agent.
//   - The CDI specs of soft-RoCE attachments (WriteCDISpec), written by the
//     CNI and left alone by the device plugin's clean-up.
//   - The DRA driver's claim checkpoints (DRAClaims), one per prepared
//     claim, holding its VFs and their settings before Prepare, and the
//     claims' CDI specs (WriteDRAClaimCDISpec), also left alone by the
//     device plugin's clean-up. The driver refuses a VF that an
//     attachment record holds. The checkpoints' per-VF index, the holds
//     (DRAHold, <claims dir>/vfs/<pci>.json), says which claim holds a VF
//     at the cost of one open: the CNI refuses a held VF on ADD and the
//     agent counts it as in use. The driver writes a VF's hold before the
//     checkpoint and removes it after, and its start removes holds left
//     without a checkpoint by a crash (draholds.go).
//
// What describes kernel state (records, locks, the gate, the CNI's cache)
// lives under /run, so it cannot outlive the VFs it describes: a reboot
// wipes both. Only the counters persist, as counters should. Every JSON
// file is replaced atomically (WriteFileAtomic) with its data and its
// directory entry synced.
package nodefiles
