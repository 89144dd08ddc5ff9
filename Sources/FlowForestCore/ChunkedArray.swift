/// A growable array held in fixed-size chunks, for tables of a million
/// flows: growing adds one chunk, where an `Array` would copy every element
/// into a buffer twice the size (holding both while it copies, and up to
/// twice the room it needs afterwards).
///
/// Order is not kept by ``removeBySwappingLast(at:)``: a flow table's slots
/// are found through an index, never by position.
///
/// Inlinable throughout: the flow trackers of other modules call it per
/// entry, and an unspecialized generic call looks its type's metadata up
/// in the runtime's locked cache every time (a quarter of the drain's CPU
/// at 100,000 changing flows).
public struct ChunkedArray<Element> {
    /// 4096 elements a chunk: about a megabyte for a flow entry, small
    /// beside a million flows, large enough that the chunk list stays short.
    @inlinable static var chunkShift: Int { 12 }
    @inlinable static var chunkSize: Int { 1 << chunkShift }
    @inlinable static var chunkMask: Int { chunkSize - 1 }

    @usableFromInline var chunks: [[Element]] = []
    @usableFromInline var storedCount = 0

    @inlinable public init() {}

    /// Elements held.
    @inlinable public var count: Int { storedCount }

    @inlinable public var isEmpty: Bool { storedCount == 0 }

    @inlinable public subscript(position: Int) -> Element {
        // In place both ways: reading a field of an element holding arrays
        // does not rely on the optimizer eliding a get's copy, nor changing one
        // on it eliding a get-then-set.
        _read { yield chunks[position >> Self.chunkShift][position & Self.chunkMask] }
        _modify { yield &chunks[position >> Self.chunkShift][position & Self.chunkMask] }
    }

    /// Adds an element at position ``count``.
    @inlinable public mutating func append(_ element: Element) {
        let chunk = count >> Self.chunkShift
        if chunk == chunks.count {
            var fresh: [Element] = []
            fresh.reserveCapacity(Self.chunkSize)
            chunks.append(fresh)
        }
        chunks[chunk].append(element)
        storedCount += 1
    }

    /// Removes the element at `position` by moving the last element into its
    /// place; returns true when an element moved (it was not the last).
    @inlinable @discardableResult
    public mutating func removeBySwappingLast(at position: Int) -> Bool {
        precondition(position >= 0 && position < count, "ChunkedArray index out of range")
        let last = count - 1
        let moved = position != last
        if moved { self[position] = self[last] }
        chunks[last >> Self.chunkShift].removeLast()
        storedCount = last
        // Keep one empty chunk as a spare, so a table that shrinks and grows
        // by one across a chunk boundary does not free and allocate a chunk each time.
        if chunks.count >= 2 && chunks[chunks.count - 2].isEmpty { chunks.removeLast() }
        return moved
    }

    /// Removes every element and frees every chunk.
    @inlinable public mutating func removeAll() {
        chunks = []
        storedCount = 0
    }
}

extension ChunkedArray: Sendable where Element: Sendable {}
