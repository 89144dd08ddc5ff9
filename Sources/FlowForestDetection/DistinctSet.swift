/// The items of one distinct-count set (peers, ports, services) with the
/// time each was last seen.
///
/// Most entities ever see one item per set: a forged source sends one
/// packet, a client talks to one server. The first item is therefore held
/// inline and a dictionary is made only for a second one, which saves a
/// hash table allocation per set for every such entity (three per host),
/// tens of thousands of them in a forged-source flood.
struct DistinctSet {
    /// Marks ``inlineTime`` empty: no packet time is this late (see ``Timestamp/endNs``).
    private static let empty = UInt64.max
    private var inlineItem: UInt64 = 0
    private var inlineTime: UInt64 = DistinctSet.empty
    private var others: [UInt64: UInt64]?

    /// Items held.
    var count: Int { (inlineTime == Self.empty ? 0 : 1) + (others?.count ?? 0) }

    /// When `item` was last seen, or nil if it is not held. Setting nil is not supported.
    subscript(item: UInt64) -> UInt64? {
        get {
            if inlineTime != Self.empty && inlineItem == item { return inlineTime }
            return others?[item]
        }
        set {
            guard let time = newValue else { preconditionFailure("DistinctSet: items are forgotten by age only") }
            if inlineTime != Self.empty && inlineItem == item {
                inlineTime = time
            } else if inlineTime == Self.empty && others?[item] == nil {
                inlineItem = item
                inlineTime = time
            } else {
                others = others ?? [:]
                others![item] = time
            }
        }
    }

    /// Forgets the items last seen before `cutoff`.
    mutating func forget(seenBefore cutoff: UInt64) {
        if inlineTime != Self.empty && inlineTime < cutoff { inlineTime = Self.empty }
        guard let o = others else { return }
        let kept = o.filter { $0.value >= cutoff }
        others = kept.isEmpty ? nil : kept
    }
}

/// The three distinct-count sets of a host or a destination, inline.
struct DistinctSets {
    static let count = 3
    private var sets = (DistinctSet(), DistinctSet(), DistinctSet())

    subscript(set: Int) -> DistinctSet {
        get {
            switch set {
            case 0: return sets.0
            case 1: return sets.1
            default: precondition(set == 2, "no distinct-count set \(set)"); return sets.2
            }
        }
        _modify {
            switch set {
            case 0: yield &sets.0
            case 1: yield &sets.1
            default: precondition(set == 2, "no distinct-count set \(set)"); yield &sets.2
            }
        }
    }

    /// Forgets every set's items last seen before `cutoff`.
    mutating func forget(seenBefore cutoff: UInt64) {
        sets.0.forget(seenBefore: cutoff)
        sets.1.forget(seenBefore: cutoff)
        sets.2.forget(seenBefore: cutoff)
    }
}
