"""SynthTown's camera rasteriser: OpenGL 4.3 (moderngl, headless EGL) multi-view rendering.

One :class:`Rasterizer` owns one EGL context. Static scenery is uploaded once per scene
(:meth:`Rasterizer.set_static`); each frame, the moving agents (``dynamic``) are uploaded and all camera
views are drawn into one atlas of render targets (view ``i`` occupies rows ``[i*H, (i+1)*H)``), then read
back at once:

* ``rgb``: sRGB uint8 (flat-shaded, sun + sky ambient + shadows, local lights, fog, rain, see
  :mod:`genesis_drive.world.lighting`);
* ``depth``: float32 metres along the optical axis (camera z), ``inf`` where the sky is seen;
* ``instance``: int32 ``face_instance`` of the visible face (0 = scenery / sky);
* ``material``: int16 :class:`~genesis_drive.world.mesh.Material` of the visible face (SKY where sky).

Projection follows :func:`genesis_drive.data.geometry.project_points` exactly: pixel ``(row j, col i)``
covers ``u in [i, i+1)``, ``v in [j, j+1)`` with ``u = fx*x/z + s*y/z + cx`` and the GL rasteriser samples
the pixel centre ``(i+0.5, j+0.5)``. The projection maps image ``v`` to GL window ``y`` unflipped, so rows
come back from OpenGL already top-down.

Rendering is deferred: a G-buffer pass stores the visible face index (``gl_PrimitiveID`` plus the draw's
first face) and its camera depth; one shading pass per pixel then reads the face's record (normal,
albedo, emission, instance, material) from a shader storage buffer. Vertices carry positions only. Coordinates are shifted by a scene origin (float64
on the CPU) before the float32 upload so that large global coordinates keep millimetre precision.
"""

from __future__ import annotations

import importlib.resources
import itertools
import zlib
from dataclasses import dataclass

import numpy as np

from genesis_drive.errors import GenesisError
from genesis_drive.world.lighting import Light, Lighting
from genesis_drive.world.mesh import TriangleMesh

__all__ = ["CameraView", "Rasterizer", "RenderOutput", "projection_matrix"]

EGL_PACKAGES = "libegl1 libgl1-mesa-dri libegl-mesa0"

_EMPTY_MESH = TriangleMesh.concat([])

# One face record in the shader storage buffer (std430: vec4, vec4, ivec4 = 48 bytes).
_FACE_DTYPE = np.dtype([("normal_emissive", "<f4", 4), ("albedo", "<f4", 4), ("ids", "<i4", 4)])


@dataclass(frozen=True, eq=False)
class CameraView:
    """One camera to render.

    channel: sensor name (e.g. ``CAM_FRONT``). intrinsics: (3, 3) pinhole matrix in pixels for an image
    of ``width`` x ``height``. cam_to_global: (4, 4) rigid transform from the camera frame (x right,
    y down, z forward, metres) to the global frame.
    """

    channel: str
    intrinsics: np.ndarray
    cam_to_global: np.ndarray
    width: int
    height: int

    def __post_init__(self) -> None:
        k = np.asarray(self.intrinsics, dtype=np.float64)
        if k.shape != (3, 3) or not np.all(np.isfinite(k)) or k[0, 0] <= 0 or k[1, 1] <= 0:
            raise ValueError(f"CameraView({self.channel}).intrinsics must be a finite (3, 3) pinhole matrix with fx, fy > 0")
        if not np.allclose(k[2], [0.0, 0.0, 1.0]) or k[1, 0] != 0:
            raise ValueError(f"CameraView({self.channel}).intrinsics must have rows [fx s cx], [0 fy cy], [0 0 1]")
        m = np.asarray(self.cam_to_global, dtype=np.float64)
        if m.shape != (4, 4) or not np.all(np.isfinite(m)):
            raise ValueError(f"CameraView({self.channel}).cam_to_global must be a finite (4, 4) matrix")
        r = m[:3, :3]
        if not np.allclose(r.T @ r, np.eye(3), atol=1e-5) or np.linalg.det(r) < 0 or not np.allclose(m[3], [0, 0, 0, 1]):
            raise ValueError(f"CameraView({self.channel}).cam_to_global must be a rigid transform (rotation + translation)")
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(f"CameraView({self.channel}) width/height must be positive, got {self.width}x{self.height}")
        object.__setattr__(self, "intrinsics", k)
        object.__setattr__(self, "cam_to_global", m)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))


@dataclass
class RenderOutput:
    """Buffers of V rendered views, images top-down.

    rgb: (v h w 3) uint8 sRGB. depth: (v h w) float32 metres along the optical axis, inf where sky.
    instance: (v h w) int32 face_instance (0 = scenery / sky). material: (v h w) int16 Material.
    """

    rgb: np.ndarray
    depth: np.ndarray
    instance: np.ndarray
    material: np.ndarray


def projection_matrix(intrinsics: np.ndarray, width: int, height: int, near: float, far: float) -> np.ndarray:
    """OpenGL clip matrix (4, 4) of a pinhole camera (camera frame x right, y down, z forward).

    Window coordinates equal image pixel coordinates: ``x_w = u = (fx*x + s*y)/z + cx`` and
    ``y_w = v = fy*y/z + cy`` (GL row 0 = image row 0, i.e. the image is stored top-down). ``clip.w``
    equals the camera z (metres); ``near``/``far`` (metres) map to NDC depth -1/+1.
    """
    k = np.asarray(intrinsics, dtype=np.float64)
    fx, s, cx, fy, cy = k[0, 0], k[0, 1], k[0, 2], k[1, 1], k[1, 2]
    return np.array(
        [
            [2 * fx / width, 2 * s / width, 2 * cx / width - 1, 0.0],
            [0.0, 2 * fy / height, 2 * cy / height - 1, 0.0],
            [0.0, 0.0, (far + near) / (far - near), -2 * far * near / (far - near)],
            [0.0, 0.0, 1.0, 0.0],
        ]
    )


def _rigid_inverse(m: np.ndarray) -> np.ndarray:
    """Inverse of a 4x4 rigid transform (closed form; no LAPACK call, whose thread pool would compete
    with the rasteriser's threads)."""
    out = np.eye(4)
    out[:3, :3] = m[:3, :3].T
    out[:3, 3] = -m[:3, :3].T @ m[:3, 3]
    return out


def _pinhole_inverse(k: np.ndarray) -> np.ndarray:
    """Inverse of a pinhole matrix [[fx, s, cx], [0, fy, cy], [0, 0, 1]] (closed form)."""
    fx, s, cx, fy, cy = k[0, 0], k[0, 1], k[0, 2], k[1, 1], k[1, 2]
    return np.array([[1 / fx, -s / (fx * fy), (s * cy - cx * fy) / (fx * fy)], [0.0, 1 / fy, -cy / fy], [0.0, 0.0, 1.0]])


def _display(radiance: np.ndarray) -> np.ndarray:
    """Display sRGB in [0, 1] of exposed linear radiance: the shaders' tone curve + the sRGB curve."""
    x = np.maximum(np.asarray(radiance, dtype=np.float64), 0.0)
    c = np.minimum(x * (1.0 + x / 9.0) / (1.0 + x), 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(c, 1 / 2.4) - 0.055)


def _hash_u32(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.uint32).copy()
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x7FEB352D)
    x ^= x >> np.uint32(15)
    x *= np.uint32(0x846CA68B)
    x ^= x >> np.uint32(16)
    return x


def _face_records(mesh: TriangleMesh, color_noise: float) -> np.ndarray:
    """Per-face shader records (M,) of :data:`_FACE_DTYPE`.

    The albedo gets a deterministic multiplicative jitter of up to +-``color_noise``, keyed by the
    instance id and the face's plane (normal and offset, quantised), so that coplanar triangles (a wall,
    a road patch) share one shade and the split of a quad into two triangles stays invisible.
    """
    v = mesh.vertices.astype(np.float64)[mesh.faces]  # (m, 3 corners, 3)
    normal = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    length = np.linalg.norm(normal, axis=1, keepdims=True)
    normal = np.where(length > 1e-12, normal / np.maximum(length, 1e-12), np.array([0.0, 0.0, 1.0]))
    rec = np.zeros(mesh.num_faces, dtype=_FACE_DTYPE)
    rec["normal_emissive"][:, :3] = normal
    rec["normal_emissive"][:, 3] = mesh.face_emissive
    albedo = mesh.face_color.astype(np.float64)
    if color_noise > 0:
        plane = np.concatenate([np.round(normal * 64.0), np.round(np.sum(normal * v[:, 0], axis=1, keepdims=True) * 4.0)], axis=1)
        key = _hash_u32(mesh.face_instance.astype(np.uint32))
        for column in plane.T:
            key = _hash_u32(key ^ column.astype(np.int64).astype(np.uint32))
        jitter = key.astype(np.float64) / 2.0**32 * 2.0 - 1.0
        albedo = np.clip(albedo * (1.0 + color_noise * jitter)[:, None], 0.0, 1.0)
    rec["albedo"][:, :3] = albedo
    rec["ids"][:, 0] = mesh.face_instance
    rec["ids"][:, 1] = mesh.face_material
    return rec


_TILE_METRES = 32.0  # side of the square ground tiles the static mesh is sorted into for culling
_LIGHT_TILE_PX = 96  # views are shaded in n x n screen tiles of about this height, each with its own lights


@dataclass(frozen=True)
class _Tiles:
    """Faces of a mesh grouped into tiles (consecutive face ranges) with world-frame bounding boxes.

    first, count: (t,) face ranges (tile k covers faces [first[k], first[k] + count[k])); lo, hi: (t, 3)
    axis-aligned bounds in metres (world frame).
    """

    first: np.ndarray
    count: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    @staticmethod
    def whole(mesh: TriangleMesh, vertices: np.ndarray) -> _Tiles:
        """One tile holding every face (no culling)."""
        if mesh.num_faces == 0:
            return _Tiles(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros((0, 3)))
        used = vertices[mesh.faces.ravel()]
        return _Tiles(np.array([0]), np.array([mesh.num_faces]), used.min(0, keepdims=True), used.max(0, keepdims=True))

    def visible_runs(self, world_to_clip: np.ndarray) -> list[tuple[int, int]]:
        """(first face, face count) runs of the tiles whose box meets the clip volume of ``world_to_clip``
        (planes extracted from the matrix rows; adjacent visible tiles merge into one run)."""
        if len(self.first) == 0:
            return []
        m = np.asarray(world_to_clip, dtype=np.float64)
        planes = np.stack([m[3] + m[0], m[3] - m[0], m[3] + m[1], m[3] - m[1], m[3] + m[2], m[3] - m[2]])
        normal, offset = planes[:, :3], planes[:, 3]
        corner = np.where(normal[None] >= 0, self.hi[:, None], self.lo[:, None])  # (t, 6, 3): most inside corner
        inside = np.all(np.einsum("tpk,pk->tp", corner, normal) + offset >= 0, axis=1)
        idx = np.flatnonzero(inside)
        if len(idx) == 0:
            return []
        cuts = np.flatnonzero(np.diff(idx) != 1)
        starts, ends = idx[np.r_[0, cuts + 1]], idx[np.r_[cuts, len(idx) - 1]]
        return [(int(self.first[a]), int(self.first[b] + self.count[b] - self.first[a])) for a, b in zip(starts, ends)]


def _tile_order(mesh: TriangleMesh, vertices: np.ndarray, tile: float) -> tuple[np.ndarray, _Tiles]:
    """Face order that groups faces by the ground tile (``tile`` metres) of their centroid, and the
    resulting tiles. ``vertices``: (n, 3) float64 world-frame positions of ``mesh``'s vertices."""
    tri = vertices[mesh.faces]  # (m, 3 corners, 3)
    cell = np.floor(tri.mean(axis=1)[:, :2] / tile).astype(np.int64)
    cell -= cell.min(axis=0)
    key = cell[:, 0] * (int(cell[:, 1].max()) + 1) + cell[:, 1]
    order = np.argsort(key, kind="stable")
    key = key[order]
    first = np.r_[0, np.flatnonzero(np.diff(key)) + 1]
    lo = np.minimum.reduceat(tri[order].min(axis=1), first, axis=0)
    hi = np.maximum.reduceat(tri[order].max(axis=1), first, axis=0)
    return order, _Tiles(first, np.diff(np.r_[first, len(key)]), lo, hi)


def _reordered(mesh: TriangleMesh, order: np.ndarray) -> TriangleMesh:
    return TriangleMesh(mesh.vertices, mesh.faces[order], mesh.face_color[order], mesh.face_instance[order], mesh.face_material[order], mesh.face_emissive[order])


class _GpuMesh:
    """Vertex and index buffers of one mesh plus its VAOs for the G-buffer and shadow programs."""

    def __init__(self, ctx, gbuffer_prog, shadow_prog):
        self._ctx = ctx
        self._progs = (gbuffer_prog, shadow_prog)
        self._buffers = None
        self.gbuffer_vao = None
        self.shadow_vao = None
        self.num_faces = 0

    def upload(self, mesh: TriangleMesh, vertices: np.ndarray) -> None:
        """Upload ``mesh`` with its vertices replaced by ``vertices`` (n, 3) (world frame, metres)."""
        self.num_faces = mesh.num_faces
        if mesh.num_faces == 0:
            return
        verts = vertices.astype("<f4").tobytes()
        faces = mesh.faces.astype("<u4").tobytes()
        if self._buffers is None or len(verts) > self._buffers[0].size or len(faces) > self._buffers[1].size:
            self.release()
            # Grow with headroom so that agents entering the scene rarely force a re-allocation.
            self._buffers = tuple(self._ctx.buffer(reserve=int(len(d) * 1.5)) for d in (verts, faces))
            vbo, ibo = self._buffers
            self.gbuffer_vao, self.shadow_vao = (
                self._ctx.vertex_array(p, [(vbo, "3f", "in_pos")], index_buffer=ibo, index_element_size=4) for p in self._progs
            )
        self._buffers[0].write(verts)
        self._buffers[1].write(faces)

    def draw(self, runs: list[tuple[int, int]], shadow: bool = False, set_offset=None) -> None:
        """Draw the face ranges ``runs`` ((first, count) pairs); ``set_offset(first)`` is called before
        each range so that the G-buffer shader can turn gl_PrimitiveID into a face index."""
        vao = self.shadow_vao if shadow else self.gbuffer_vao
        for first, count in runs:
            if set_offset is not None:
                set_offset(first)
            vao.render(vertices=3 * count, first=3 * first)

    def release(self) -> None:
        for obj in (self.gbuffer_vao, self.shadow_vao, *(self._buffers or ())):
            if obj is not None:
                obj.release()
        self._buffers = self.gbuffer_vao = self.shadow_vao = None


def _shader(name: str) -> str:
    path = importlib.resources.files("genesis_drive.world").joinpath("shaders", name)
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise GenesisError(f"{path}: shader source missing from the installed package ({e})") from e


def _create_context():
    try:
        import moderngl
    except ImportError as e:  # pragma: no cover - moderngl is a hard dependency
        raise GenesisError(f"the camera renderer needs moderngl (pip install moderngl): {e}") from e
    try:
        ctx = moderngl.create_context(standalone=True, backend="egl", require=430)
    except Exception as e:
        raise GenesisError(
            "could not create a headless OpenGL 4.3 context through EGL for the camera renderer "
            f"({type(e).__name__}: {e}); on Debian/Ubuntu install the packages {EGL_PACKAGES} "
            f"(apt-get install {EGL_PACKAGES})"
        ) from e
    return moderngl, ctx


class Rasterizer:
    """Multi-view OpenGL rasteriser with one reused headless EGL context.

    width, height: image size in pixels of every view.
    max_lights: local lights shaded per screen tile (n x n tiles per view, n = height / 96 px within
        1..8): of the lights whose range sphere meets the tile's frustum, the nearest to a point 15 m
        ahead of the camera.
    near, far: clip distances in metres along the optical axis.
    shadow_map_size: sun shadow-map texels per side; 0 disables sun shadows; None picks a power of two
        near twice the larger image side, within 512..2048.
    shadow_extent: half side in metres of the square around the cameras that the shadow map covers.
    color_noise: relative albedo jitter per plane of the static scenery (agents keep exact colours).
    max_views: views per atlas pass (more views are drawn in several passes).

    Each frame: (1) the sun shadow map; (2) per view, a G-buffer pass writing the visible face index and
    its camera depth; (3) per view, deferred shading as two full-screen triangles at the far plane whose
    depth test against the G-buffer depth splits sky pixels (``<=``) from surface pixels (``>``), so each
    pixel is shaded once, and writes colour, instance and material; (4) one read-back per buffer for all
    views. The static mesh is sorted into 32 m ground tiles whose bounding boxes are culled against each
    view frustum and the shadow volume.
    """

    def __init__(
        self,
        width: int,
        height: int,
        max_lights: int = 16,
        near: float = 0.1,
        far: float = 1000.0,
        shadow_map_size: int | None = None,
        shadow_extent: float = 80.0,
        color_noise: float = 0.05,
        max_views: int = 6,
    ):
        if width <= 0 or height <= 0:
            raise ValueError(f"Rasterizer width/height must be positive pixels, got {width}x{height}")
        if not 0 < near < far:
            raise ValueError(f"Rasterizer needs 0 < near < far metres, got near={near}, far={far}")
        if shadow_map_size is None:  # ~2 texels per image pixel of the larger side, 512..2048
            shadow_map_size = int(min(2048, max(512, 2 ** int(np.ceil(np.log2(2 * max(width, height)))))))
        if max_lights < 1 or shadow_map_size < 0 or shadow_extent <= 0 or max_views < 1 or not 0 <= color_noise < 1:
            raise ValueError(
                "Rasterizer needs max_lights >= 1, shadow_map_size >= 0, shadow_extent > 0, max_views >= 1, "
                f"0 <= color_noise < 1; got {max_lights}, {shadow_map_size}, {shadow_extent}, {max_views}, {color_noise}"
            )
        self.width, self.height = int(width), int(height)
        self.max_lights = int(max_lights)
        self.near, self.far = float(near), float(far)
        self.shadow_extent = float(shadow_extent)
        self.shadow_map_size = int(shadow_map_size)
        self.color_noise = float(color_noise)
        self._mgl, self._ctx = _create_context()
        ctx, mgl = self._ctx, self._mgl
        max_tex = int(ctx.info["GL_MAX_TEXTURE_SIZE"])
        if self.width > max_tex or self.height > max_tex:
            raise ValueError(f"Rasterizer image {self.width}x{self.height} exceeds GL_MAX_TEXTURE_SIZE {max_tex}")
        self.max_views = int(min(max_views, max_tex // self.height))

        self._programs: dict = {}
        self._gbuffer = self._program("gbuffer.vert", "gbuffer.frag")[0]
        self._background = self._program("fullscreen.vert", "background.frag")
        self._shadow = self._program("shadow.vert", "shadow.frag")[0]

        size = (self.width, self.height * self.max_views)  # atlas: view i occupies rows [i*H, (i+1)*H)
        self._gtex = (
            ctx.texture(size, 1, dtype="i4"),  # face index + 1 (0 = none)
            ctx.texture(size, 1, dtype="f4"),  # camera z, metres (0 = none)
        )
        self._otex = (
            ctx.texture(size, 4, dtype="f1"),  # sRGB colour
            ctx.texture(size, 1, dtype="i4"),  # instance id
            ctx.texture(size, 1, dtype="i2"),  # material
        )
        for t in (*self._gtex, *self._otex):
            t.filter = (mgl.NEAREST, mgl.NEAREST)
        self._depth = ctx.depth_texture(size)
        self._gbuffer_fbo = ctx.framebuffer(color_attachments=list(self._gtex), depth_attachment=self._depth)
        self._shade_fbo = ctx.framebuffer(color_attachments=list(self._otex), depth_attachment=self._depth)

        self._shadow_tex = ctx.depth_texture((max(self.shadow_map_size, 1),) * 2)
        self._shadow_tex.compare_func = "<="
        self._shadow_tex.filter = (mgl.LINEAR, mgl.LINEAR)
        self._shadow_tex.repeat_x = self._shadow_tex.repeat_y = False
        self._shadow_fbo = ctx.framebuffer(depth_attachment=self._shadow_tex)

        self._origin = np.zeros(3)
        self._static = _GpuMesh(ctx, self._gbuffer, self._shadow)
        self._dynamic = _GpuMesh(ctx, self._gbuffer, self._shadow)
        # One face-record buffer for both meshes: static records first, this frame's dynamic ones after.
        self._static_records = b""
        self._static_tiles = self._dynamic_tiles = _Tiles.whole(_EMPTY_MESH, np.zeros((0, 3)))
        self._faces = ctx.buffer(reserve=_FACE_DTYPE.itemsize * 1024)
        self._closed = False

    # ------------------------------------------------------------------ public API

    def set_static(self, mesh: TriangleMesh) -> None:
        """Upload the scene's static geometry (global frame, metres); replaces the previous one.

        The scene origin (centre of the static bounding box, rounded to metres) is chosen here; every
        later dynamic mesh, light and camera is expressed relative to it on the GPU.
        """
        self._check_open()
        if not isinstance(mesh, TriangleMesh):
            raise TypeError(f"Rasterizer.set_static expects a TriangleMesh, got {type(mesh).__name__}")
        if mesh.num_faces:
            v = mesh.vertices.astype(np.float64)
            self._origin = np.round((v.min(axis=0) + v.max(axis=0)) / 2.0)
        else:
            self._origin = np.zeros(3)
        vertices = mesh.vertices.astype(np.float64) - self._origin
        if mesh.num_faces:
            order, self._static_tiles = _tile_order(mesh, vertices, _TILE_METRES)
            mesh = _reordered(mesh, order)
        else:
            self._static_tiles = _Tiles.whole(mesh, vertices)
        with self._ctx:  # make this rasteriser's context current (several may live in one process)
            self._static.upload(mesh, vertices)
            self._static_records = _face_records(mesh, self.color_noise).tobytes() if mesh.num_faces else b""
            self._write_faces(b"", static_changed=True)

    def render(
        self,
        views: list[CameraView],
        dynamic: TriangleMesh,
        lighting: Lighting,
        rain_seed: int | None = None,
    ) -> RenderOutput:
        """Render every view of one frame: static scenery + ``dynamic`` (this frame's agents).

        rain_seed: seed of the rain-streak pattern (used when ``lighting.rain > 0``; vary it per frame to
        animate the rain; None means 0). The streak pattern is keyed by (rain_seed, camera channel), so it
        does not depend on the order of ``views``. Same inputs give identical bytes.
        """
        self._check_open()
        views = list(views)
        if not views:
            raise ValueError("Rasterizer.render needs at least one CameraView")
        for view in views:
            if not isinstance(view, CameraView):
                raise TypeError(f"Rasterizer.render views must be CameraView, got {type(view).__name__}")
            if (view.width, view.height) != (self.width, self.height):
                raise ValueError(
                    f"CameraView({view.channel}) is {view.width}x{view.height} but this Rasterizer renders "
                    f"{self.width}x{self.height}; scale the intrinsics (geometry.scale_intrinsics) or make another Rasterizer"
                )
        if not isinstance(dynamic, TriangleMesh):
            raise TypeError(f"Rasterizer.render dynamic must be a TriangleMesh, got {type(dynamic).__name__}")
        if not isinstance(lighting, Lighting):
            raise TypeError(f"Rasterizer.render lighting must be a Lighting, got {type(lighting).__name__}")
        seed = 0 if rain_seed is None else int(rain_seed)
        if not 0 <= seed < 2**32:
            raise ValueError(f"rain_seed must lie in [0, 2**32), got {rain_seed}")
        with self._ctx:  # make this rasteriser's context current (several may live in one process)
            return self._render(views, dynamic, lighting, seed)

    def _render(self, views: list[CameraView], dynamic: TriangleMesh, lighting: Lighting, seed: int) -> RenderOutput:
        dyn_vertices = dynamic.vertices.astype(np.float64) - self._origin
        self._dynamic.upload(dynamic, dyn_vertices)
        self._dynamic_tiles = _Tiles.whole(dynamic, dyn_vertices)
        self._write_faces(_face_records(dynamic, 0.0).tobytes() if dynamic.num_faces else b"")
        cam_to_world = [self._local(v.cam_to_global) for v in views]
        shadows = self._render_shadow_map(lighting, np.mean([m[:3, 3] for m in cam_to_world], axis=0))
        light_tiles = [self._light_tiles(lighting.lights, v, m) for v, m in zip(views, cam_to_world)]
        any_light = any(len(keep) for tiles in light_tiles for _, keep in tiles)
        rain = lighting.rain > 0
        sky = self._program("fullscreen.vert", "sky.frag", rain=rain)
        surface = self._program("fullscreen.vert", "surface.frag", rain=rain, shadows=shadows, lights=any_light, wet=lighting.wetness > 0)
        self._set_lighting_uniforms((sky, surface), lighting, seed)
        light_arrays = self._light_arrays(lighting.lights)

        v_count, h, w = len(views), self.height, self.width
        out = RenderOutput(
            rgb=np.empty((v_count, h, w, 3), np.uint8),
            depth=np.empty((v_count, h, w), np.float32),
            instance=np.empty((v_count, h, w), np.int32),
            material=np.empty((v_count, h, w), np.int16),
        )
        for start in range(0, v_count, self.max_views):
            chunk = range(start, min(start + self.max_views, v_count))
            self._gbuffer_fbo.use()
            self._gbuffer_fbo.clear(depth=1.0)
            for slot, i in enumerate(chunk):
                self._draw_gbuffer(slot, views[i], cam_to_world[i])
            self._shade_fbo.use()
            self._gtex[0].use(location=2)
            self._gtex[1].use(location=3)
            self._shadow_tex.use(location=1)
            self._faces.bind_to_storage_buffer(0)
            for slot, i in enumerate(chunk):
                self._draw_shading(slot, views[i], cam_to_world[i], light_tiles[i], light_arrays, sky, surface)
            n = len(chunk)
            rows = (0, 0, w, h * n)
            sl = slice(start, start + n)
            rgba = np.frombuffer(self._shade_fbo.read(rows, 4, 0, dtype="f1"), np.uint8).reshape(n, h, w, 4)
            out.rgb[sl] = rgba[..., :3]
            out.instance[sl] = np.frombuffer(self._shade_fbo.read(rows, 1, 1, dtype="i4"), np.int32).reshape(n, h, w)
            out.material[sl] = np.frombuffer(self._shade_fbo.read(rows, 1, 2, dtype="i2"), np.int16).reshape(n, h, w)
            out.depth[sl] = np.frombuffer(self._gbuffer_fbo.read(rows, 1, 1, dtype="f4"), np.float32).reshape(n, h, w)
        out.depth[out.depth <= 0] = np.inf
        return out

    def close(self) -> None:
        """Release every GL object and the EGL context (idempotent)."""
        if self._closed:
            return
        with self._ctx:
            self._static.release()
            self._dynamic.release()
            for prog, vao in self._programs.values():
                if vao is not None:
                    vao.release()
                prog.release()
            for obj in (self._gbuffer_fbo, self._shade_fbo, self._shadow_fbo, *self._gtex, *self._otex, self._depth, self._shadow_tex, self._faces):
                obj.release()
            self._programs.clear()
        self._ctx.release()
        self._closed = True

    @property
    def gl_renderer(self) -> str:
        """The OpenGL implementation in use, e.g. ``llvmpipe (LLVM 15.0.6, 256 bits)``."""
        return f"{self._ctx.info['GL_RENDERER']} / OpenGL {self._ctx.info['GL_VERSION']}"

    def __enter__(self) -> Rasterizer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _check_open(self) -> None:
        if self._closed:
            raise GenesisError("Rasterizer is closed")

    def _program(self, vert: str, frag: str, **switches: bool):
        """(program, full-screen VAO or None) of ``vert`` + ``frag`` compiled with the ``#define``s whose
        switch is on (cached).

        Switches compile features out instead of branching on uniforms, which keeps the per-pixel cost
        on the CPU rasteriser (llvmpipe runs both sides of a branch) at what the frame needs.
        """
        defines = tuple(sorted(k.upper() for k, on in switches.items() if on))
        key = (vert, frag, defines)
        if key not in self._programs:
            header = f"#version 430\n#define MAX_LIGHTS {self.max_lights}\n" + "".join(f"#define {d}\n" for d in defines)
            fragment = header + (_shader("common.glsl") if frag in ("sky.frag", "surface.frag") else "") + _shader(frag)
            prog = self._ctx.program(vertex_shader=header + _shader(vert), fragment_shader=fragment)
            vao = self._ctx.vertex_array(prog, []) if vert == "fullscreen.vert" else None
            for name, unit in (("u_shadow_map", 1), ("u_face_tex", 2), ("u_depth_tex", 3)):
                self._set_value(prog, name, unit)
            self._programs[key] = (prog, vao)
        return self._programs[key]

    def _write_faces(self, dynamic_records: bytes, static_changed: bool = False) -> None:
        """Face buffer = static records, then ``dynamic_records`` (grown, and refilled, when too small)."""
        need = len(self._static_records) + len(dynamic_records)
        if need > self._faces.size:
            self._faces.release()
            self._faces = self._ctx.buffer(reserve=int(need * 1.5))
            static_changed = True
        if static_changed and self._static_records:
            self._faces.write(self._static_records)
        if dynamic_records:
            self._faces.write(dynamic_records, offset=len(self._static_records))

    def _local(self, m: np.ndarray) -> np.ndarray:
        """(4, 4) child->global transform re-expressed child->world (global minus the scene origin)."""
        out = np.array(m, dtype=np.float64)
        out[:3, 3] -= self._origin
        return out

    @staticmethod
    def _write(prog, name: str, value) -> None:
        """Set a float uniform (scalar, vector or array) if the compiled program kept it."""
        uniform = prog.get(name, None)
        if uniform is not None:
            uniform.write(np.ascontiguousarray(value, dtype="<f4").tobytes())

    @staticmethod
    def _set_value(prog, name: str, value) -> None:
        """Set an int / bool / sampler uniform if the compiled program kept it."""
        uniform = prog.get(name, None)
        if uniform is not None:
            uniform.value = value

    @staticmethod
    def _write_matrix(prog, name: str, m: np.ndarray) -> None:
        uniform = prog.get(name, None)
        if uniform is not None:
            uniform.write(np.asarray(m, dtype="<f4").T.copy().tobytes())  # GLSL matrices are column-major

    def _set_lighting_uniforms(self, programs, lighting: Lighting, seed: int) -> None:
        rain_color = _display(lighting.exposure * (1.6 * lighting.sky_horizon + 0.03))
        for prog, _ in programs:
            for name, value in (
                ("u_sun_dir", lighting.sun_direction),
                ("u_sun_color", lighting.sun_color),
                ("u_sky_horizon", lighting.sky_horizon),
                ("u_sky_zenith", lighting.sky_zenith),
                ("u_fog_color", lighting.fog_color),
                ("u_sun_disc", lighting.sun_disc),
                ("u_fog_density", lighting.fog_density),
                ("u_fog_height", lighting.fog_height),
                ("u_exposure", lighting.exposure),
                ("u_rain", lighting.rain),
                ("u_image_height", float(self.height)),
                ("u_sky_ambient", lighting.ambient),
                ("u_ground_ambient", lighting.ground_ambient),
                ("u_emissive_gain", lighting.emissive_gain),
                ("u_wetness", lighting.wetness),
                ("u_shadow_strength", lighting.shadow_strength),
                ("u_rain_color", rain_color),
            ):
                self._write(prog, name, value)
            self._set_value(prog, "u_rain_seed", seed)

    def _render_shadow_map(self, lighting: Lighting, center: np.ndarray) -> bool:
        """Render the orthographic sun depth map over a square of half side ``shadow_extent`` around
        ``center`` (world frame), snapped to whole texels so shadows do not shimmer as the ego moves.
        Returns whether sun shadows are on for this frame."""
        sun = lighting.sun_direction
        enabled = (
            self.shadow_map_size > 0
            and sun[2] > 0.01
            and lighting.shadow_strength > 0
            and float(np.max(lighting.sun_color)) > 0
            and (self._static.num_faces + self._dynamic.num_faces) > 0
        )
        if not enabled:
            return False
        up = np.array([0.0, 0.0, 1.0]) if abs(sun[2]) < 0.99 else np.array([1.0, 0.0, 0.0])
        right = np.cross(-sun, up)
        right /= np.linalg.norm(right)
        upv = np.cross(right, -sun)
        texel = 2.0 * self.shadow_extent / self.shadow_map_size
        cx, cy = (np.round(np.dot(a, center) / texel) * texel for a in (right, upv))
        depth_range = 400.0  # metres either side of the centre along the sun direction
        m = np.eye(4)
        m[0, :3], m[0, 3] = right / self.shadow_extent, -cx / self.shadow_extent
        m[1, :3], m[1, 3] = upv / self.shadow_extent, -cy / self.shadow_extent
        m[2, :3], m[2, 3] = -sun / depth_range, np.dot(sun, center) / depth_range
        self._shadow_matrix, self._shadow_texel = m, texel
        self._write_matrix(self._shadow, "u_world_to_shadow", m)
        ctx, mgl = self._ctx, self._mgl
        self._shadow_fbo.use()
        self._shadow_fbo.clear(depth=1.0)
        ctx.depth_func = "<"
        ctx.enable(mgl.DEPTH_TEST)
        ctx.disable(mgl.CULL_FACE | mgl.BLEND)
        self._static.draw(self._static_tiles.visible_runs(m), shadow=True)
        self._dynamic.draw(self._dynamic_tiles.visible_runs(m), shadow=True)
        return True

    def _light_tiles(self, lights: tuple[Light, ...], view: CameraView, cam_to_world: np.ndarray):
        """[((x, y, w, h) pixel rectangle, indices into ``lights``)] for the screen tiles of ``view`` (one tile covering
        the image when there are no lights). Each tile gets the lights whose range sphere meets the
        tile's frustum; beyond ``max_lights``, the nearest to a point 15 m ahead of the camera (kept in
        list order). Shading tile by tile spares pixels the loop over lights that cannot reach them."""
        if not lights:
            return [((0, 0, self.width, self.height), np.zeros(0, np.int64))]
        world_to_cam = _rigid_inverse(cam_to_world)
        pos = np.array([light.position for light in lights]) - self._origin
        reach = np.array([light.range for light in lights])
        focus = cam_to_world[:3, 3] + 15.0 * cam_to_world[:3, 2]
        rank = np.argsort(np.argsort(np.linalg.norm(pos - focus, axis=1), kind="stable"), kind="stable")
        n = int(np.clip(round(self.height / _LIGHT_TILE_PX), 1, 8))
        xs = np.linspace(0, self.width, n + 1).round().astype(int)
        ys = np.linspace(0, self.height, n + 1).round().astype(int)
        tiles = []
        for y0, y1 in itertools.pairwise(ys):
            for x0, x1 in itertools.pairwise(xs):
                k = np.array(view.intrinsics, dtype=np.float64)
                k[0, 2] -= x0
                k[1, 2] -= y0
                m = projection_matrix(k, x1 - x0, y1 - y0, self.near, self.far) @ world_to_cam
                planes = np.stack([m[3] + m[0], m[3] - m[0], m[3] + m[1], m[3] - m[1], m[3] + m[2], m[3] - m[2]])
                planes /= np.linalg.norm(planes[:, :3], axis=1, keepdims=True)
                keep = np.flatnonzero(np.all(pos @ planes[:, :3].T + planes[:, 3] >= -reach[:, None], axis=1))
                if len(keep) > self.max_lights:
                    keep = np.sort(keep[np.argsort(rank[keep], kind="stable")[: self.max_lights]])
                tiles.append(((int(x0), int(y0), int(x1 - x0), int(y1 - y0)), keep))
        return tiles

    def _light_arrays(self, lights: tuple[Light, ...]) -> dict[str, np.ndarray]:
        """Uniform rows of every light of the frame: position (world) + range, colour, spot axis +
        cos(outer half-angle), cos(inner half-angle). Point lights get cos_outer = -2 (never cut)."""
        n = len(lights)
        arrays = {
            "u_light_pos_range": np.zeros((n, 4)),
            "u_light_color": np.zeros((n, 4)),
            "u_light_dir_cos": np.tile([0.0, 0.0, -1.0, -2.0], (n, 1)),
            "u_light_cos_inner": np.full(n, -1.5),
        }
        for i, light in enumerate(lights):
            arrays["u_light_pos_range"][i] = [*(light.position - self._origin), light.range]
            arrays["u_light_color"][i, :3] = light.color
            if light.is_spot:
                arrays["u_light_dir_cos"][i] = [*light.direction, np.cos(light.outer_angle)]
                # a hard-edged cone (inner == outer) keeps a well-defined smoothstep
                arrays["u_light_cos_inner"][i] = max(np.cos(light.inner_angle), arrays["u_light_dir_cos"][i, 3] + 1e-4)
        return arrays

    def _set_light_uniforms(self, prog, arrays: dict[str, np.ndarray], keep: np.ndarray) -> None:
        """Upload the rows ``keep`` of the frame's light arrays (zero-padded to ``max_lights``)."""
        if prog.get("u_num_lights", None) is None:  # compiled without LIGHTS
            return
        self._set_value(prog, "u_num_lights", len(keep))
        for name, rows in arrays.items():
            padded = np.zeros((self.max_lights, *rows.shape[1:]))
            padded[: len(keep)] = rows[keep]
            self._write(prog, name, padded)

    def _draw_gbuffer(self, slot: int, view: CameraView, cam_to_world: np.ndarray) -> None:
        ctx, mgl = self._ctx, self._mgl
        ctx.viewport = (0, slot * self.height, self.width, self.height)
        ctx.disable(mgl.DEPTH_TEST | mgl.CULL_FACE | mgl.BLEND)
        self._background[1].render(mode=mgl.TRIANGLES, vertices=3)
        world_to_clip = projection_matrix(view.intrinsics, self.width, self.height, self.near, self.far) @ _rigid_inverse(cam_to_world)
        self._write_matrix(self._gbuffer, "u_world_to_clip", world_to_clip)
        ctx.depth_func = "<"
        ctx.enable(mgl.DEPTH_TEST)
        for mesh, tiles, base in ((self._static, self._static_tiles, 0), (self._dynamic, self._dynamic_tiles, self._static.num_faces)):
            mesh.draw(tiles.visible_runs(world_to_clip), set_offset=lambda first, base=base: self._set_value(self._gbuffer, "u_face_offset", base + first))

    def _draw_shading(self, slot, view, cam_to_world, light_tiles, light_arrays, sky, surface) -> None:
        ctx, mgl = self._ctx, self._mgl
        ctx.viewport = (0, slot * self.height, self.width, self.height)
        pix_to_world = cam_to_world[:3, :3] @ _pinhole_inverse(view.intrinsics)
        for prog, _ in (sky, surface):
            self._write(prog, "u_view_origin", [0.0, float(slot * self.height)])
            self._set_value(prog, "u_view_key", zlib.crc32(view.channel.encode("utf-8")))
            self._write_matrix(prog, "u_pix_to_world_dir", pix_to_world)
        self._write(surface[0], "u_cam_pos", cam_to_world[:3, 3])
        if surface[0].get("u_world_to_shadow", None) is not None:
            self._write_matrix(surface[0], "u_world_to_shadow", self._shadow_matrix)
            self._write(surface[0], "u_shadow_texel", self._shadow_texel)
        ctx.enable(mgl.DEPTH_TEST)
        self._shade_fbo.depth_mask = False
        ctx.depth_func = "<="
        sky[1].render(mode=mgl.TRIANGLES, vertices=3)
        ctx.depth_func = ">"
        for (x, y, w, h), keep in light_tiles:
            if len(light_tiles) > 1:
                ctx.scissor = (x, slot * self.height + y, w, h)
            self._set_light_uniforms(surface[0], light_arrays, keep)
            surface[1].render(mode=mgl.TRIANGLES, vertices=3)
        ctx.scissor = None
        self._shade_fbo.depth_mask = True
