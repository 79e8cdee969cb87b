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
