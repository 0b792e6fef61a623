"""Hydra's search path gets the `configs/` folders of mtlrun's loaded plug-ins (a Hydra
search-path plug-in, which Hydra finds in this namespace package), so that a plug-in's
experiments and methods are options like mtlrun's own wherever Hydra looks: composing a config,
a glob over a group (`'+method=glob(*)'` expands over every folder on the path, which a
`hydra.searchpath` override does not reach), and the choices a mistake lists. mtlrun loads its
plug-ins before Hydra starts, and Hydra builds the search path as it starts."""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

from mtlrun.plugins import config_dirs


class MtlrunPluginConfigs(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        for folder in config_dirs():
            search_path.append(provider="mtlrun-plugin", path=f"file://{folder}")
