//! The Lua scripts of the Redis tier. Each runs atomically on the server.

use std::sync::LazyLock;

/// Fill only if the key's invalidation counter still reads what the loader saw.
/// `KEYS`: the key, its guard. `ARGV`: the guard value seen, the envelope, the TTL (ms).
pub(super) static FILL_IF_UNCHANGED: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local g = redis.call('GET', KEYS[2])
        if (g or '0') == ARGV[1] then
            redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
            return 1
        end
        return 0",
    )
});

/// A writer's store: only if the counter still reads what the writer saw, and advance it.
/// `ARGV` as [`FILL_IF_UNCHANGED`], plus the guard's TTL (ms).
pub(super) static REPLACE_IF_UNCHANGED: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local g = redis.call('GET', KEYS[2])
        if (g or '0') == ARGV[1] then
            redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
            redis.call('INCR', KEYS[2])
            redis.call('PEXPIRE', KEYS[2], ARGV[4])
            return 1
        end
        return 0",
    )
});

/// Advance the key's invalidation counter and drop the key, in one step. A counter that
/// is not a number (garbage) is replaced by a fresh random one.
/// `KEYS`: the key, its guard. `ARGV`: the guard's TTL (ms), a random fallback value.
pub(super) static INVALIDATE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local ok, g = pcall(redis.call, 'INCR', KEYS[2])
        if not ok then
            redis.call('SET', KEYS[2], ARGV[2])
            g = tonumber(ARGV[2])
        end
        redis.call('PEXPIRE', KEYS[2], ARGV[1])
        redis.call('UNLINK', KEYS[1])
        return g",
    )
});

/// Release a lease only if we still own it. `KEYS`: the lease. `ARGV`: the owner.
pub(super) static RELEASE_LEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        if redis.call('GET', KEYS[1]) == ARGV[1] then
            return redis.call('DEL', KEYS[1])
        end
        return 0",
    )
});

/// The Lua that starts a missing (or unreadable) counter at the server's clock in
/// microseconds: above any value it held before, unless it was bumped more than once a
/// microsecond on average since it was first made. So a counter that vanished (a
/// restart without persistence, an eviction, a `DEL` by hand) never hands out a version
/// it handed out before, and no instance's clock is involved.
const START_MISSING: &str = r"
    local t = redis.call('TIME')
    local start = t[1] .. string.format('%06d', tonumber(t[2]))
    local function current(k)
        local v = redis.call('GET', k)
        if (not v) or (not string.match(v, '^%d+$')) then
            redis.call('SET', k, start)
            return start
        end
        return v
    end";

/// The values of counters, starting missing ones. `KEYS`: the counters.
pub(super) static READ_COUNTERS: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        r"{START_MISSING}
        local out = {{}}
        for i, k in ipairs(KEYS) do out[i] = current(k) end
        return out"
    ))
});

/// Advances counters (starting missing ones first) and returns their new values.
/// `KEYS`: the counters.
pub(super) static BUMP_COUNTERS: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        r"{START_MISSING}
        local out = {{}}
        for i, k in ipairs(KEYS) do
            current(k)
            -- A Lua number below 2^53 comes back as an exact integer reply.
            out[i] = redis.call('INCR', k)
        end
        return out"
    ))
});

/// Tag versions: `version(name)` is the sequence at which the tag was last invalidated,
/// or the hash's floor, whichever is higher. The floor is set when the hash is made (or
/// made again after it vanished) to the current sequence, so a tag whose history was
/// lost counts as invalidated then: a lost hash never makes an old entry current again.
/// Needs `START_MISSING` and the locals `tags` (the hash) and `seq` (the sequence).
const TAG_VERSIONS: &str = r"
    local floor
    local function version(name)
        if not floor then
            floor = redis.call('HGET', tags, '_floor')
            if (not floor) or (not string.match(floor, '^%d+$')) then
                floor = current(seq)
                redis.call('HSET', tags, '_floor', floor)
            end
            floor = tonumber(floor)
        end
        local v = tonumber(redis.call('HGET', tags, name) or '0') or 0
        if v < floor then return floor end
        return v
    end";

/// Every read of the tier, in one round trip. `KEYS`: the entries, then the generation,
/// the tag versions and the tag sequence; `ARGV[1]`: how many entries. Returns, per
/// entry, its bytes (or nil), its PTTL and a status (1: fine; 0: one of its tags was
/// invalidated after its load began; 2: not a string), then the generation and the tag
/// sequence. A tagged entry (envelope format 3) carries its tags in a text section.
pub(super) static READ: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        r"{START_MISSING}
        local n = tonumber(ARGV[1])
        local tags, seq = KEYS[n + 2], KEYS[n + 3]
        {TAG_VERSIONS}
        local out = {{}}
        for i = 1, n do
            local v = redis.pcall('GET', KEYS[i])
            local status, pttl = 1, -2
            if type(v) == 'table' then
                v, status = false, 2
            elseif v then
                pttl = redis.call('PTTL', KEYS[i])
                if string.byte(v, 3) == 3 and string.len(v) >= 33 then
                    local len = struct.unpack('<I4', v, 30)
                    local as_of
                    for line in string.gmatch(string.sub(v, 34, 33 + len), '[^\n]+') do
                        if not as_of then
                            as_of = tonumber(line) or 0
                        elseif version(line) > as_of then
                            status = 0
                            break
                        end
                    end
                end
            end
            out[#out + 1] = v
            out[#out + 1] = pttl
            out[#out + 1] = status
        end
        out[#out + 1] = current(KEYS[n + 1])
        out[#out + 1] = current(seq)
        return out"
    ))
});

/// The tag sequence and the versions of tags. `KEYS`: the tag versions, the tag
/// sequence; `ARGV`: tag names. Returns the sequence, then each version (a Lua number
/// below 2^53 comes back as an exact integer reply).
pub(super) static READ_TAGS: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        r"{START_MISSING}
        local tags, seq = KEYS[1], KEYS[2]
        {TAG_VERSIONS}
        local out = {{current(seq)}}
        for i, name in ipairs(ARGV) do out[i + 1] = version(name) end
        return out"
    ))
});

/// Invalidates tags: draws the next sequence and records it as each tag's version.
/// `KEYS` and `ARGV` as [`READ_TAGS`]. Returns the sequence.
pub(super) static BUMP_TAGS: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        r"{START_MISSING}
        local tags, seq = KEYS[1], KEYS[2]
        {TAG_VERSIONS}
        version('_')
        current(seq)
        local s = redis.call('INCR', seq)
        for _, name in ipairs(ARGV) do redis.call('HSET', tags, name, s) end
        return s"
    ))
});

/// Counts one request of a client in its fixed window, in one atomic step: `INCR` of
/// KEYS[1]; the window (ARGV[1] ms) starts at the first request, when the counter has no
/// expiry yet. A counter that holds garbage is started again. Returns `{count, ms left
/// in the window}`.
pub(super) static COUNT_REQUEST: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local ok, n = pcall(redis.call, 'INCR', KEYS[1])
if not ok then
  redis.call('DEL', KEYS[1])
  n = redis.call('INCR', KEYS[1])
end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
return {n, left}
",
    )
});

/// The entries of one slot, for a Redis Cluster (where [`READ`] cannot reach the
/// counters in the same script). `KEYS`: the entries, all in one slot. Returns, per
/// entry, its bytes (or nil), its PTTL and a status (1: a string; 2: not a string).
pub(super) static READ_ENTRIES: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local out = {}
        for _, k in ipairs(KEYS) do
            local v = redis.pcall('GET', k)
            local status, pttl = 1, -2
            if type(v) == 'table' then
                v, status = false, 2
            elseif v then
                pttl = redis.call('PTTL', k)
            end
            out[#out + 1] = v
            out[#out + 1] = pttl
            out[#out + 1] = status
        end
        return out",
    )
});

/// The generation, the tag sequence and the versions of tags, for a Redis Cluster read
/// after [`READ_ENTRIES`]. `KEYS`: the generation, the tag versions, the tag sequence
/// (one slot); `ARGV`: tag names. Returns the generation, the sequence, then each
/// version.
pub(super) static READ_STATE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        r"{START_MISSING}
        local tags, seq = KEYS[2], KEYS[3]
        {TAG_VERSIONS}
        local out = {{current(KEYS[1]), current(seq)}}
        for i, name in ipairs(ARGV) do out[i + 2] = version(name) end
        return out"
    ))
});
