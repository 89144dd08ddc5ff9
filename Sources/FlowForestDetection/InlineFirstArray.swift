/// A short list whose first element is held inline and the rest in an array.
///
/// The host tracker keeps a few lists per entity: an entity's latest flows,
/// its peers this poll, a beacon history's connection starts. Most entities
/// hold one element in each (a forged source sends one packet, a client
/// talks to one server), and an array would take a heap block for it (its
/// 32-byte header and the element, 48 to 80 bytes with the allocator's
/// own) per entity, hundreds of thousands of them in a forged-source flood.
/// Here a list of one element takes no heap block; the second element
/// makes the array.
struct InlineFirstArray<Element>: RandomAccessCollection, MutableCollection {
    /// Nil only while the list is empty: `rest` is then empty too.
    private var head: Element?
    private var rest: [Element] = []

    init() {}

    init(_ elements: some Sequence<Element>) {
        for e in elements { append(e) }
    }

    var startIndex: Int { 0 }
    var endIndex: Int { head == nil ? 0 : 1 + rest.count }

    subscript(position: Int) -> Element {
        get {
            precondition(head != nil && position >= 0 && position <= rest.count, "InlineFirstArray: index \(position) out of range")
            return position == 0 ? head! : rest[position - 1]
        }
        set {
            precondition(head != nil && position >= 0 && position <= rest.count, "InlineFirstArray: index \(position) out of range")
            if position == 0 { head = newValue } else { rest[position - 1] = newValue }
        }
    }

    mutating func append(_ element: Element) {
        if head == nil { head = element } else { rest.append(element) }
    }

    /// Inserts `element` before position `i` (at the end when `i` is the count).
    mutating func insert(_ element: Element, at i: Int) {
        precondition(i >= 0 && i <= count, "InlineFirstArray: insertion index \(i) out of range")
        guard let h = head else { return head = element }
        if i == 0 {
            rest.insert(h, at: 0)
            head = element
        } else {
            rest.insert(element, at: i - 1)
        }
    }

    /// Removes the first `k` elements (all of them when `k` is the count or more).
    mutating func removeFirst(_ k: Int) {
        guard k > 0 else { return }
        guard k < count else { return removeAll() }
        head = rest[k - 1]
        rest.removeFirst(k)
    }

    /// Removes the elements for which `shouldRemove` holds, keeping the order of the others.
    mutating func removeAll(where shouldRemove: (Element) throws -> Bool) rethrows {
        try rest.removeAll(where: shouldRemove)
        if let h = head, try shouldRemove(h) { head = rest.isEmpty ? nil : rest.removeFirst() }
    }

    /// Empties the list; `keepingCapacity` keeps the array's block for the elements after the first.
    mutating func removeAll(keepingCapacity: Bool = false) {
        head = nil
        rest.removeAll(keepingCapacity: keepingCapacity)
    }
}

extension InlineFirstArray: Sendable where Element: Sendable {}
extension InlineFirstArray: Equatable where Element: Equatable {}
